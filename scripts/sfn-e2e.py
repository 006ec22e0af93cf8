"""The real state machine definition executed by moto's Step Functions interpreter, its Tasks reaching the real
functions served by `cargo lambda watch` (through scripts/lambda_proxy.py). Used by scripts/sfn-e2e.sh.

    sfn-e2e.py setup BUCKET           bucket, SES identity, demo inbox for 2025-01-15 and, for 2025-01-16, the
                                      same day with Stripe's second page truncated, for 2025-01-19 Stripe's pages and the ledger; the
                                      state machine
    sfn-e2e.py run NAME INPUT_JSON    start an execution, wait for it, print its status and output, the largest
                                      state input or output of its history (bytes, and whose) and the failed
                                      Lambda attempts Step Functions retried
    sfn-e2e.py wait NAME              the same for an execution something else started (s3-trigger)
    sfn-e2e.py executions PREFIX      the names of the executions whose name starts with PREFIX
    sfn-e2e.py paged BUCKET DATE N    a Stripe day of N pages of one charge each, and its ledger, in the inbox
"""
import json, os, pathlib, sys, time, urllib.request
import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
endpoint = os.environ["AWS_ENDPOINT_URL"]
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:recon-e2e"


def setup(bucket):
    req = urllib.request.Request(endpoint + "/moto-api/config", method="POST",
                                 data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    boto3.client("sesv2", endpoint_url=endpoint).create_email_identity(EmailIdentity="recon@example.com")
    demo = ROOT / "events/demo"
    for p in (demo / "inbox").rglob("*"):
        if p.is_file():
            key = str(p.relative_to(demo))
            s3.put_object(Bucket=bucket, Key=key, Body=p.read_bytes())
            body = p.read_bytes()
            if p.name == "balance_transactions-page-00002.json":
                body = body[: len(body) // 2]
            s3.put_object(Bucket=bucket, Key=key.replace("2025-01-15", "2025-01-16"), Body=body)
            if "/stripe/" in key or "/ledger/" in key:
                # the two-drop day: Stripe's two pages dropped a second apart (s3-trigger, settle window)
                s3.put_object(Bucket=bucket, Key=key.replace("2025-01-15", "2025-01-19"), Body=p.read_bytes())
    text = (ROOT / "state-machines/reconciliation.asl.json").read_text()
    for fn in ["fetch-stripe", "fetch-paypal", "fetch-square", "fetch-ledger", "match", "notify"]:
        text = text.replace("${%s_arn}" % fn.replace("-", "_"), f"arn:aws:lambda:us-east-1:123456789012:function:{fn}")
    boto3.client("stepfunctions", endpoint_url=endpoint).create_state_machine(
        name="recon-e2e", definition=text, roleArn="arn:aws:iam::123456789012:role/recon-states")


def run(name, payload):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
    arn = sfn.start_execution(stateMachineArn=ARN, name=name, input=payload)["executionArn"]
    report(sfn, arn)


def wait(name):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
    report(sfn, ARN.replace(":stateMachine:", ":execution:") + ":" + name)


def executions(prefix):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=ARN)["executions"] if e["name"].startswith(prefix)]
    print(json.dumps(names))


def history(sfn, arn):
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def paged(bucket, date, n):
    """The same shape as tests/tests/payloads.rs's day, uploaded in parallel."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timezone
    s3 = boto3.client("s3", endpoint_url=endpoint)
    start = int(datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp())
    rows = ["ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at"]

    def page(k):
        created = start + k
        body = {"object": "list", "url": "/v1/balance_transactions", "has_more": k < n, "data": [{
            "id": f"txn_1Pg{k:07}", "object": "balance_transaction", "amount": 1000 + k,
            "available_on": created + 86400, "balance_type": "payments", "created": created, "currency": "usd",
            "description": None, "exchange_rate": None, "fee": 0, "fee_details": [], "net": 1000 + k,
            "reporting_category": "charge", "source": f"ch_1Pg{k:07}", "status": "available", "type": "charge"}]}
        s3.put_object(Bucket=bucket, Key=f"inbox/stripe/{date}/balance_transactions-page-{k:05}.json",
                      Body=json.dumps(body).encode())

    for k in range(1, n + 1):
        booked = datetime.fromtimestamp(start + k, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        a = 1000 + k
        rows.append(f"L-{k:07},stripe,ch_1Pg{k:07},ord_{k},charge,{a // 100}.{a % 100:02},USD,captured,{booked}")
    s3.put_object(Bucket=bucket, Key=f"inbox/ledger/{date}/ledger.csv", Body=("\n".join(rows) + "\n").encode())
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(page, range(1, n + 1)))


def report(sfn, arn):
    for _ in range(1200):
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            break
        time.sleep(0.5)
    events = history(sfn, arn)
    if d["status"] != "SUCCEEDED":
        print(json.dumps(events[-6:], default=str, indent=1), file=sys.stderr)
    largest, whose, retried = 0, None, []
    for e in events:
        for k, v in e.items():
            if not (k.endswith("EventDetails") and isinstance(v, dict)):
                continue
            for field in ("input", "output", "parameters"):
                if isinstance(v.get(field), str) and len(v[field].encode()) > largest:
                    largest, whose = len(v[field].encode()), f"{e['type']} {v.get('name', '')} {field}"
            if e["type"] in ("LambdaFunctionFailed", "TaskFailed"):
                retried.append(v.get("error"))
    print(json.dumps({"status": d["status"], "output": json.loads(d.get("output") or "null"),
                      "largest_payload": largest, "largest": whose, "failed_attempts": retried,
                      "events": len(events)}))


if __name__ == "__main__":
    {"setup": lambda: setup(sys.argv[2]), "run": lambda: run(sys.argv[2], sys.argv[3]),
     "wait": lambda: wait(sys.argv[2]), "executions": lambda: executions(sys.argv[2]),
     "paged": lambda: paged(sys.argv[2], sys.argv[3], int(sys.argv[4]))}[sys.argv[1]]()
