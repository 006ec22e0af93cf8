"""The real state machine definition executed by moto's Step Functions interpreter, its Tasks reaching the real
functions served by `cargo lambda watch` (through scripts/lambda_proxy.py). Used by scripts/sfn-e2e.sh.

    sfn-e2e.py setup BUCKET           bucket, SES identity, demo inbox for 2025-01-15 and, for 2025-01-16, the
                                      same day with Stripe's second page truncated; the state machine
    sfn-e2e.py run NAME INPUT_JSON    start an execution, wait for it, print its status and output
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
    text = (ROOT / "state-machines/reconciliation.asl.json").read_text()
    for fn in ["fetch-stripe", "fetch-paypal", "fetch-square", "fetch-ledger", "match", "notify"]:
        text = text.replace("${%s_arn}" % fn.replace("-", "_"), f"arn:aws:lambda:us-east-1:123456789012:function:{fn}")
    boto3.client("stepfunctions", endpoint_url=endpoint).create_state_machine(
        name="recon-e2e", definition=text, roleArn="arn:aws:iam::123456789012:role/recon-states")


def run(name, payload):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
    arn = sfn.start_execution(stateMachineArn=ARN, name=name, input=payload)["executionArn"]
    for _ in range(600):
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            break
        time.sleep(0.5)
    if d["status"] != "SUCCEEDED":
        events = sfn.get_execution_history(executionArn=arn)["events"]
        print(json.dumps(events[-6:], default=str, indent=1), file=sys.stderr)
    print(json.dumps({"status": d["status"], "output": json.loads(d.get("output") or "null")}))


if __name__ == "__main__":
    {"setup": lambda: setup(sys.argv[2]), "run": lambda: run(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
