"""The function a Python team would write instead of export-job-status: the same route, a boto3
client made once at init, the same JSON for a job, problems for bad ids and HealthLake errors.
Run by the benchmark under awslambdaric, the official Python runtime interface client. HealthLake
is reached through AWS_ENDPOINT_URL_HEALTHLAKE and trusted through AWS_CA_BUNDLE."""

import json
import re
from datetime import timezone

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_ID = re.compile(r"^[\w\s.:/=+\-%@]{1,32}$")
_TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCEL_COMPLETED"}
_STATUS = {
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "AccessDeniedException": 500,
}

# Once per execution environment, as boto3's documentation recommends.
_client = boto3.client(
    "healthlake",
    config=Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=1,
        read_timeout=5,
    ),
)


def _iso(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _problem(status, title):
    body = {"type": "about:blank", "title": title, "status": status}
    return {
        "statusCode": status,
        "headers": {"content-type": "application/problem+json", "cache-control": "no-store"},
        "body": json.dumps(body),
    }


def handler(event, context):
    params = event.get("pathParameters") or {}
    datastore, job = params.get("datastoreId"), params.get("jobId")
    if not (datastore and job and _ID.match(datastore) and _ID.match(job)):
        return _problem(400, "Invalid path parameter")
    try:
        props = _client.describe_fhir_export_job(DatastoreId=datastore, JobId=job)["ExportJobProperties"]
    except ClientError as e:
        return _problem(_STATUS.get(e.response["Error"]["Code"], 502), "Upstream error")
    except BotoCoreError:
        return _problem(502, "Upstream error")
    body = {
        "datastoreId": datastore,
        "jobId": props["JobId"],
        "jobName": props.get("JobName"),
        "status": props["JobStatus"],
        "terminal": props["JobStatus"] in _TERMINAL,
        "submittedAt": _iso(props["SubmitTime"]),
    }
    if "EndTime" in props:
        body["endedAt"] = _iso(props["EndTime"])
    uri = props.get("OutputDataConfig", {}).get("S3Configuration", {}).get("S3Uri")
    if uri:
        body["outputS3Uri"] = uri
    terminal = body["terminal"]
    return {
        "statusCode": 200,
        "headers": {
            "content-type": "application/json",
            "cache-control": "private, max-age=86400, immutable" if terminal else "no-store",
        },
        "body": json.dumps({k: v for k, v in body.items() if v is not None}),
    }
