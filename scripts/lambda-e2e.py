"""Sets up moto for scripts/lambda-e2e.sh (runs with moto's own Python, which has boto3) and checks results.

    lambda-e2e.py setup BUCKET        create the bucket and SES identity, upload events/demo/inbox, stage the raw
                                      objects events/match/demo-stripe.json lists (copied from their inbox origin)
    lambda-e2e.py check-match FILE    the match output: a succeeded stripe run with the demo's figures
    lambda-e2e.py check-failed FILE   a failed run naming the missing ledger manifest
    lambda-e2e.py check-mail TO       moto recorded a raw message to TO with both parts
"""
import json, os, pathlib, sys, urllib.request
import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
endpoint = os.environ["AWS_ENDPOINT_URL"]


def setup(bucket):
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    boto3.client("sesv2", endpoint_url=endpoint).create_email_identity(EmailIdentity="recon@example.com")
    demo = ROOT / "events/demo"
    for p in (demo / "inbox").rglob("*"):
        if p.is_file():
            s3.put_object(Bucket=bucket, Key=str(p.relative_to(demo)), Body=p.read_bytes())
    ev = json.loads((ROOT / "events/match/demo-stripe.json").read_text())
    for m in ev["manifests"]:
        for o in m["objects"]:
            s3.copy_object(Bucket=bucket, Key=o["key"], CopySource={"Bucket": bucket, "Key": o["origin"]})


def check_match(path):
    run = json.loads(pathlib.Path(path).read_text())
    assert run["status"] == "succeeded", run
    assert run["processor"] == "stripe", run
    assert run["total_discrepancy_amount"] == {"USD": "4478.00"}, run
    assert run["matched_count"] == 13 and run["clean_count"] == 10, run
    print(run["run_id"])


def check_failed(path):
    run = json.loads(pathlib.Path(path).read_text())
    assert run["status"] == "failed" and "no ledger manifest" in run["error"], run
    assert run["severity"] is None, run


def check_partition(path):
    r = json.loads(pathlib.Path(path).read_text())
    assert r["index"] == 0 and r["count"] == 2, r
    assert r["key"].startswith("work/2025-01-15/stripe/") and r["key"].endswith("partition-00000-of-00002.json"), r
    bucket = os.environ["BUCKET"]
    body = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key=r["key"])["Body"].read()
    kept = json.loads(body)
    assert kept["index"] == 0 and kept["count"] == 2 and len(kept["run"]) == 64, {k: kept[k] for k in ("index", "count")}
    outcome = kept["outcome"]
    assert outcome["processor_count"] == r["processor_count"], (outcome["processor_count"], r)
    assert len(outcome["discrepancies"]) == r["discrepancies"], r


def check_mail(to):
    data = json.load(urllib.request.urlopen(endpoint + "/moto-api/data.json"))
    raws = [m for m in data.get("ses", {}).get("RawMessage", []) if to in json.dumps(m)]
    assert raws, "no message to " + to
    raw = raws[-1].get("raw_data", "")
    assert "text/plain" in raw and "text/html" in raw, raw[:500]
    assert "square" in raw and "authentication failed" in raw, raw[:2000]


if __name__ == "__main__":
    {"setup": setup, "check-match": check_match, "check-failed": check_failed, "check-partition": check_partition, "check-mail": check_mail}[sys.argv[1]](sys.argv[2])
