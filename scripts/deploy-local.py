"""What scripts/deploy-local.sh asks of the deployed stack in moto (boto3 from moto's venv).

    deploy-local.py env FUNCTION             the environment Terraform gave FUNCTION (GetFunctionConfiguration),
                                             one NAME=VALUE per line
    deploy-local.py prepare BUCKET DB_SECRET PROCESSOR_SECRET DB_JSON
                                             the demo inbox (events/demo) into the bucket Terraform created; the
                                             database secret Terraform created filled with DB_JSON; the processor
                                             secret with no credentials (every source is dropped in the inbox)
    deploy-local.py execute                  moto's Step Functions set to execute (before anything is created)
    deploy-local.py aside BUCKET FILE        set the bucket policy aside (kept in FILE): its TLS-only Deny is evaluated
                                             by moto, which answers plain HTTP only
    deploy-local.py back BUCKET FILE         put it back as it was
    deploy-local.py wait EXECUTION_ARN       wait for an execution; print its status and output
    deploy-local.py sent                     how many emails SES accepted (moto's send statistics)
    deploy-local.py alarm STATE_MACHINE EMAIL   a failed execution of STATE_MACHINE raises an alarm whose action is
                                             an SNS topic EMAIL is subscribed to
"""
import json, os, pathlib, sys, time, urllib.request
import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
endpoint = os.environ["AWS_ENDPOINT_URL"]


def env(function):
    cfg = boto3.client("lambda", endpoint_url=endpoint).get_function_configuration(FunctionName=function)
    for k, v in sorted(cfg.get("Environment", {}).get("Variables", {}).items()):
        print(f"{k}={v}")


def execute():
    """Before anything is created: moto forgets its state machines when this is set."""
    req = urllib.request.Request(endpoint + "/moto-api/config", method="POST",
                                 data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


def prepare(bucket, db_secret, processor_secret, db_json):
    s3 = boto3.client("s3", endpoint_url=endpoint)
    demo = ROOT / "events/demo"
    for p in sorted((demo / "inbox").rglob("*")):
        if p.is_file():
            s3.put_object(Bucket=bucket, Key=str(p.relative_to(demo)), Body=p.read_bytes())
    sm = boto3.client("secretsmanager", endpoint_url=endpoint)
    sm.put_secret_value(SecretId=db_secret, SecretString=db_json)
    sm.put_secret_value(SecretId=processor_secret, SecretString="{}")


def aside(bucket, path):
    s3 = boto3.client("s3", endpoint_url=endpoint)
    pathlib.Path(path).write_text(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    s3.delete_bucket_policy(Bucket=bucket)


def back(bucket, path):
    boto3.client("s3", endpoint_url=endpoint).put_bucket_policy(Bucket=bucket, Policy=pathlib.Path(path).read_text())


def wait(arn):
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
    for _ in range(1200):
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            break
        time.sleep(0.5)
    if d["status"] != "SUCCEEDED":
        events = sfn.get_execution_history(executionArn=arn)["events"]
        print(json.dumps(events[-6:], default=str, indent=1), file=sys.stderr)
    print(json.dumps({"status": d["status"], "output": json.loads(d.get("output") or "null")}))


def alarm(state_machine, email):
    alarms = boto3.client("cloudwatch", endpoint_url=endpoint).describe_alarms()["MetricAlarms"]
    failed = [a for a in alarms if a.get("Namespace") == "AWS/States" and a.get("MetricName") == "ExecutionsFailed"
              and {"Name": "StateMachineArn", "Value": state_machine} in a.get("Dimensions", [])]
    assert failed, f"no ExecutionsFailed alarm on {state_machine}: {[a['AlarmName'] for a in alarms]}"
    sns = boto3.client("sns", endpoint_url=endpoint)
    for topic in failed[0]["AlarmActions"]:
        subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if any(s["Protocol"] == "email" and s["Endpoint"] == email for s in subs):
            print(f"{failed[0]['AlarmName']} -> {topic} -> {email}")
            return
    raise SystemExit(f"{failed[0]['AlarmName']}: no action reaches {email}")


def sent():
    points = boto3.client("ses", endpoint_url=endpoint).get_send_statistics()["SendDataPoints"]
    print(sum(p.get("DeliveryAttempts", 0) for p in points))


if __name__ == "__main__":
    {"env": lambda: env(sys.argv[2]), "prepare": lambda: prepare(*sys.argv[2:6]),
     "execute": execute, "aside": lambda: aside(*sys.argv[2:4]), "back": lambda: back(*sys.argv[2:4]),
     "wait": lambda: wait(sys.argv[2]), "sent": sent, "alarm": lambda: alarm(*sys.argv[2:4])}[sys.argv[1]]()
