"""Routes moto's Step Functions Lambda calls to `cargo lambda watch` (tooling.md): moto's interpreter invokes
Lambda at localhost:$MOTO_PORT; this proxy listens there, forwards
POST /2015-03-31/functions/{name-or-arn}/invocations to watch (ARN -> bare name; watch's HTTP 500 -> 200 with
X-Amz-Function-Error: Unhandled, as Lambda answers) and everything else to moto.

    lambda_proxy.py LISTEN_PORT MOTO_PORT WATCH_PORT
"""
import http.server, re, sys, urllib.error, urllib.request

LISTEN, MOTO, WATCH = (int(a) for a in sys.argv[1:4])
INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        m = INVOKE.match(self.path)
        if m and self.command == "POST":
            name = urllib.request.unquote(m.group(1)).split(":function:")[-1].split(":")[0]
            url = f"http://127.0.0.1:{WATCH}/2015-03-31/functions/{name}/invocations"
            headers = {"Content-Type": "application/json"}
        else:
            url = f"http://127.0.0.1:{MOTO}{self.path}"
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(url, data=body, method=self.command, headers=headers)
        extra = {}
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                status, data, rh = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, data, rh = e.code, e.read(), dict(e.headers)
            if m:
                status, extra = 200, {"X-Amz-Function-Error": "Unhandled"}
        self.send_response(status)
        for k, v in rh.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
