"""Routes moto's Step Functions Lambda calls to `cargo lambda watch` (tooling.md), and stands between the
functions and moto as a fault injector. moto's interpreter invokes Lambda at localhost:$MOTO_PORT; this proxy
listens there, forwards POST /2015-03-31/functions/{name-or-arn}/invocations to watch (ARN -> bare name;
watch's HTTP 500 -> 200 with X-Amz-Function-Error: Unhandled, as Lambda answers) and everything else to moto.
The functions' own AWS calls (AWS_ENDPOINT_URL) come through here too, so that a test can make S3 or SES fail.

Faults (the test harness arms them; moto itself cannot inject faults):
    PUT    /__faults   [{"method": "GET", "path": "^/bucket/raw/", "status": 503, "body": "...",
                         "headers": {...}, "times": 6, "forward": false, "delay": 0}, ...]
           a request whose method and path (a regex) match a rule with times left is answered with the
           rule's status, body and headers; "forward": true sends it on to moto first (the service acted, the
           answer is lost); "delay" waits that many seconds before answering
    GET    /__faults   the rules with the times each has left
    DELETE /__faults   no faults

    lambda_proxy.py LISTEN_PORT MOTO_PORT WATCH_PORT

LAMBDA_ROUTES='{"recon-dev-match": [9061, "match"], ...}' sends each deployed function's invokes to the watch
serving it (its port, and the binary it runs); MOTO_GAPS=1 answers the two Step Functions calls Terraform makes
that moto lacks (ValidateStateMachineDefinition: OK; ListStateMachineVersions: none) — for `make deploy-local`.
"""
import http.server, json, os, re, sys, threading, time, urllib.error, urllib.request

LISTEN, MOTO, WATCH = (int(a) for a in sys.argv[1:4])
INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")
faults, lock = [], threading.Lock()
ROUTES = json.loads(os.environ.get("LAMBDA_ROUTES") or "{}")
GAPS = {
    "AWSStepFunctions.ValidateStateMachineDefinition": {"result": "OK", "diagnostics": []},
    "AWSStepFunctions.ListStateMachineVersions": {"stateMachineVersions": []},
} if os.environ.get("MOTO_GAPS") == "1" else {}


def armed(method, path):
    with lock:
        for rule in faults:
            if rule.get("times", 0) > 0 and rule.get("method", method) == method and re.search(rule["path"], path):
                rule["times"] -= 1
                return dict(rule)
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def answer(self, status, data, headers):
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", headers.get("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def control(self, body):
        global faults
        with lock:
            if self.command == "PUT":
                faults = json.loads(body or b"[]")
            elif self.command == "DELETE":
                faults = []
            data = json.dumps(faults).encode()
        self.answer(200, data, {"Content-Type": "application/json"})

    def forward(self):
        body = self.body()
        path = self.path.split("?")[0]
        if path == "/__faults":
            return self.control(body)
        target = self.headers.get("X-Amz-Target", "")
        if target in GAPS:
            return self.answer(200, json.dumps(GAPS[target]).encode(), {"Content-Type": "application/x-amz-json-1.0"})
        m = INVOKE.match(self.path)
        fault = None if m else armed(self.command, urllib.request.unquote(path))
        if fault and not fault.get("forward"):
            time.sleep(fault.get("delay", 0))
            return self.answer(fault["status"], fault.get("body", "").encode(), fault.get("headers", {}))
        if m and self.command == "POST":
            name = urllib.request.unquote(m.group(1)).split(":function:")[-1].split(":")[0]
            port, name = ROUTES.get(name, (WATCH, name))
            url = f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations"
            headers = {"Content-Type": "application/json"}
        else:
            url = f"http://127.0.0.1:{MOTO}{self.path}"
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "transfer-encoding", "expect")}
            if body is not None and not any(k.lower() == "content-type" for k in headers):
                # urllib would send a form content type, and moto would read the body as a form: S3's own default
                headers["Content-Type"] = "binary/octet-stream"
        req = urllib.request.Request(url, data=body, method=self.command, headers=headers)
        extra = {}
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                status, data, rh = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, data, rh = e.code, e.read(), dict(e.headers)
            if m:
                status, extra = 200, {"X-Amz-Function-Error": "Unhandled"}
        if fault:
            # the service acted; its answer is lost
            time.sleep(fault.get("delay", 0))
            return self.answer(fault["status"], fault.get("body", "").encode(), fault.get("headers", {}))
        rh.update(extra)
        self.answer(status, data, rh)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
