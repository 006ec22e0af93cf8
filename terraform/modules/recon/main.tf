# The whole recon stack for one environment.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

variable "environment" { type = string }
variable "region" { type = string }
variable "azs" { type = list(string) }
variable "operations_email" { type = string }
variable "sender_email" { type = string }
variable "artifacts_dir" {
  type        = string
  description = "Where `cargo lambda build --release --arm64 --output-format zip` wrote <function>/bootstrap.zip."
}
variable "multi_az" { type = bool }
variable "notify_min_severity" {
  type    = string
  default = "HIGH"
}
variable "item_rules" {
  description = "Items (README, Working the exceptions): days beyond the grace days open missing items stay match candidates, and the ages that escalate an open item to at least HIGH and to CRITICAL."
  type = object({
    lookback_days          = number
    escalate_high_days     = number
    escalate_critical_days = number
  })
  default = {
    lookback_days          = 30
    escalate_high_days     = 3
    escalate_critical_days = 7
  }
}
variable "internal_api_base_url" {
  type    = string
  default = ""
}
variable "ses_configuration_set" {
  type        = bool
  default     = true
  description = "Always true in AWS; false only for the local apply onto moto (make deploy-local), see the monitoring module."
}
variable "partitions" {
  type        = number
  default     = 1
  description = "Partitions of each processor's match in the daily run (1: one match invocation; README, Sharding)."
}
variable "split_bytes" {
  type        = number
  default     = 0
  description = "With partitions above 1: the split step's byte range size (0: no split; README, Sharding)."
}

locals {
  name = "recon-${var.environment}"
}

module "storage" {
  source = "../storage"
  name   = local.name
}

module "network" {
  source      = "../network"
  name        = local.name
  azs         = var.azs
  region      = var.region
  kms_key_arn = module.storage.kms_key_arn
}

module "database" {
  source      = "../database"
  name        = local.name
  subnet_ids  = module.network.private_subnet_ids
  vpc_id      = module.network.vpc_id
  vpc_cidr    = "10.40.0.0/16"
  kms_key_arn = module.storage.kms_key_arn
  multi_az    = var.multi_az
}

resource "aws_secretsmanager_secret" "processors" {
  #checkov:skip=CKV2_AWS_57:Processor API keys are rotated in the processors' dashboards, not by a Lambda; the runbook says how.
  name       = "${local.name}/processor-api-keys"
  kms_key_id = module.storage.kms_key_arn
}

locals {
  common_env = {
    ENVIRONMENT            = var.environment
    AWS_S3_BUCKET_NAME     = module.storage.bucket
    SENDER_EMAIL           = var.sender_email
    OPERATIONS_EMAIL       = var.operations_email
    SES_REGION             = var.region
    NOTIFY_MIN_SEVERITY    = var.notify_min_severity
    PROCESSOR_SECRET_ARN   = aws_secretsmanager_secret.processors.arn
    LOOKBACK_DAYS          = tostring(var.item_rules.lookback_days)
    ESCALATE_HIGH_DAYS     = tostring(var.item_rules.escalate_high_days)
    ESCALATE_CRITICAL_DAYS = tostring(var.item_rules.escalate_critical_days)
  }
  db_env = {
    DB_SECRET_ARN = module.database.secret_arn
    DB_HOST       = module.database.endpoint
    DB_PORT       = tostring(module.database.port)
    DB_NAME       = "recon"
  }
  bucket_arn = module.storage.bucket_arn
}

# --- least-privilege policies, one per function ---------------------------------------------------------
data "aws_iam_policy_document" "fetch" {
  for_each = toset(["stripe", "paypal", "square", "ledger"])
  statement {
    sid       = "ReadInbox"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [local.bucket_arn, "${local.bucket_arn}/inbox/${each.key}/*"]
  }
  statement {
    sid       = "ListInbox"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  # a dropped file above 5 GiB is staged as a multipart copy, aborted when it fails
  statement {
    sid       = "StageRaw"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/raw/${each.key}/*"]
  }
  statement {
    sid       = "ProcessorKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.processors.arn]
  }
  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [module.storage.kms_key_arn]
  }
}

data "aws_iam_policy_document" "match" {
  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/raw/*"]
  }
  statement {
    sid       = "WriteReports"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${local.bucket_arn}/reports/*"]
  }
  statement {
    sid       = "PartitionOutcomes"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${local.bucket_arn}/work/*"]
  }
  statement {
    sid       = "DbSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.database.secret_arn]
  }
  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [module.storage.kms_key_arn]
  }
}

data "aws_iam_policy_document" "notify" {
  statement {
    sid       = "PresignReports"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/reports/*"]
  }
  statement {
    sid       = "IdempotencyRecords"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${local.bucket_arn}/notifications/*"]
  }
  statement {
    sid       = "Send"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = concat([module.monitoring.sender_identity_arn], var.ses_configuration_set ? ["arn:aws:ses:${var.region}:*:configuration-set/${module.monitoring.configuration_set}"] : [])
  }
  statement {
    sid       = "DbSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.database.secret_arn]
  }
  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt"]
    resources = [module.storage.kms_key_arn]
  }
}

data "aws_iam_policy_document" "trigger" {
  statement {
    sid       = "DropStillThere"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/inbox/*"]
  }
  statement {
    # without it, S3 answers a HeadObject of a vanished drop 403 instead of 404 (a condition on s3:prefix would
    # not apply to a HeadObject)
    sid       = "VanishedDrop"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  statement {
    sid       = "Start"
    actions   = ["states:StartExecution", "states:DescribeExecution"]
    resources = [module.state_machine.arn, "arn:aws:states:${var.region}:*:execution:${local.name}-reconciliation:*"]
  }
}

module "fetch" {
  for_each             = toset(["stripe", "paypal", "square", "ledger"])
  source               = "../lambda_function"
  name                 = "${local.name}-fetch-${each.key}"
  zip_path             = "${var.artifacts_dir}/fetch-${each.key}/bootstrap.zip"
  environment          = merge(local.common_env, each.key == "ledger" && var.internal_api_base_url != "" ? { INTERNAL_API_BASE_URL = var.internal_api_base_url } : {})
  policy_json          = data.aws_iam_policy_document.fetch[each.key].json
  timeout              = 600
  memory_size          = 1024
  subnet_ids           = module.network.egress_subnet_ids
  security_group_ids   = [module.network.functions_security_group_id]
  kms_key_arn          = module.storage.kms_key_arn
  dead_letter_arn      = module.storage.dlq_arn
  reserved_concurrency = 5
}

module "match" {
  source             = "../lambda_function"
  name               = "${local.name}-match"
  zip_path           = "${var.artifacts_dir}/match/bootstrap.zip"
  environment        = merge(local.common_env, local.db_env)
  policy_json        = data.aws_iam_policy_document.match.json
  timeout            = 900
  memory_size        = 3008
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.functions_security_group_id]
  kms_key_arn        = module.storage.kms_key_arn
  dead_letter_arn    = module.storage.dlq_arn
}

module "notify" {
  source             = "../lambda_function"
  name               = "${local.name}-notify"
  zip_path           = "${var.artifacts_dir}/notify/bootstrap.zip"
  environment        = merge(local.common_env, local.db_env, var.ses_configuration_set ? { SES_CONFIGURATION_SET = module.monitoring.configuration_set } : {})
  policy_json        = data.aws_iam_policy_document.notify.json
  timeout            = 120
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.functions_security_group_id]
  kms_key_arn        = module.storage.kms_key_arn
  dead_letter_arn    = module.storage.dlq_arn
}

module "s3_trigger" {
  source             = "../lambda_function"
  name               = "${local.name}-s3-trigger"
  zip_path           = "${var.artifacts_dir}/s3-trigger/bootstrap.zip"
  environment        = merge(local.common_env, { STATE_MACHINE_ARN = module.state_machine.arn })
  policy_json        = data.aws_iam_policy_document.trigger.json
  timeout            = 30
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.functions_security_group_id]
  kms_key_arn        = module.storage.kms_key_arn
  dead_letter_arn    = module.storage.dlq_arn
}

module "state_machine" {
  source          = "../state_machine"
  name            = "${local.name}-reconciliation"
  definition_path = "${path.module}/../../../state-machines/reconciliation.asl.json"
  kms_key_arn     = module.storage.kms_key_arn
  partitions      = var.partitions
  split_bytes     = var.split_bytes
  function_arns = {
    fetch_stripe = module.fetch["stripe"].arn
    fetch_paypal = module.fetch["paypal"].arn
    fetch_square = module.fetch["square"].arn
    fetch_ledger = module.fetch["ledger"].arn
    match        = module.match.arn
    notify       = module.notify.arn
  }
}

# Files dropped in inbox/ reach s3-trigger through EventBridge.
resource "aws_cloudwatch_event_rule" "inbox" {
  name        = "${local.name}-inbox-drop"
  description = "Settlement files dropped in inbox/ start a reconciliation for that processor and date"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [module.storage.bucket] }
      object = { key = [{ prefix = "inbox/" }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "inbox" {
  rule = aws_cloudwatch_event_rule.inbox.name
  arn  = module.s3_trigger.arn
  retry_policy {
    maximum_retry_attempts       = 4
    maximum_event_age_in_seconds = 3600
  }
}

resource "aws_lambda_permission" "inbox" {
  statement_id  = "AllowEventBridgeInbox"
  action        = "lambda:InvokeFunction"
  function_name = module.s3_trigger.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.inbox.arn
}

module "monitoring" {
  source                = "../monitoring"
  name                  = local.name
  operations_email      = var.operations_email
  sender_email          = var.sender_email
  state_machine_arn     = module.state_machine.arn
  kms_key_arn           = module.storage.kms_key_arn
  ses_configuration_set = var.ses_configuration_set
  function_names        = concat([for f in module.fetch : f.name], [module.match.name, module.notify.name, module.s3_trigger.name])
}

output "bucket" { value = module.storage.bucket }
output "state_machine_arn" { value = module.state_machine.arn }
output "processor_secret_arn" { value = aws_secretsmanager_secret.processors.arn }
