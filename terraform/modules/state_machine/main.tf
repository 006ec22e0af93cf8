# The Step Functions state machine (templatefile() of state-machines/reconciliation.asl.json, ARNs only),
# its role (invoke exactly the six functions it calls), logging and X-Ray, and the daily schedule.

variable "name" { type = string }
variable "definition_path" { type = string }
variable "function_arns" {
  type        = map(string)
  description = "fetch_stripe, fetch_paypal, fetch_square, fetch_ledger, match, notify"
}
variable "kms_key_arn" { type = string }
variable "partitions" {
  type        = number
  default     = 1
  description = "Partitions of each processor's match in the scheduled run (a Distributed Map when above 1)."
  validation {
    condition     = var.partitions >= 1 && var.partitions <= 500
    error_message = "partitions must be 1..500 (the Map's receipts must fit one state payload)."
  }
}
variable "split_bytes" {
  type        = number
  default     = 0
  description = "With partitions above 1: byte ranges of about this size for the split step (each partition then reads only its own files); 0: no split."
  validation {
    condition     = var.split_bytes == 0 || var.split_bytes >= 1048576
    error_message = "split_bytes must be 0 (no split) or at least 1 MiB (each range is one Lambda invocation)."
  }
}
variable "schedule_expression" {
  type    = string
  default = "cron(0 4 * * ? *)"
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "states" {
  name               = "${var.name}-states"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # built from the name, not the resource, so that the role can name its own state machine without a cycle
  own_arn        = "arn:aws:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:stateMachine:${var.name}"
  own_executions = "arn:aws:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:execution:${var.name}/*"
}

data "aws_iam_policy_document" "states" {
  statement {
    actions   = ["lambda:InvokeFunction"]
    resources = concat(values(var.function_arns), [for a in values(var.function_arns) : "${a}:*"])
  }
  statement {
    sid       = "DistributedMapChildren"
    actions   = ["states:StartExecution"]
    resources = [local.own_arn]
  }
  statement {
    sid       = "DistributedMapChildrenState"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.own_executions]
  }
  statement {
    actions = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"] # CloudWatch Logs delivery and X-Ray APIs do not support resource-level permissions
  }
}

resource "aws_iam_role_policy" "states" {
  name   = "${var.name}-states"
  role   = aws_iam_role.states.id
  policy = data.aws_iam_policy_document.states.json
}

resource "aws_cloudwatch_log_group" "states" {
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = 365
  kms_key_id        = var.kms_key_arn
}

resource "aws_sfn_state_machine" "this" {
  name     = var.name
  role_arn = aws_iam_role.states.arn
  definition = templatefile(var.definition_path, {
    fetch_stripe_arn = var.function_arns["fetch_stripe"]
    fetch_paypal_arn = var.function_arns["fetch_paypal"]
    fetch_square_arn = var.function_arns["fetch_square"]
    fetch_ledger_arn = var.function_arns["fetch_ledger"]
    match_arn        = var.function_arns["match"]
    notify_arn       = var.function_arns["notify"]
  })
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.states.arn}:*"
    include_execution_data = true # payloads carry keys, counts and summaries, never secrets or transactions
    level                  = "ALL"
  }
  tracing_configuration {
    enabled = true
  }
}

# Daily at 04:00 UTC for yesterday: the definition resolves a missing date to yesterday (UTC).
data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

resource "aws_iam_role_policy" "scheduler" {
  name = "${var.name}-scheduler"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["states:StartExecution"], Resource = [aws_sfn_state_machine.this.arn] }]
  })
}

resource "aws_scheduler_schedule" "daily" {
  name                         = "${var.name}-daily"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = var.kms_key_arn
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_sfn_state_machine.this.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ trigger = "schedule", partitions = var.partitions, split_bytes = var.split_bytes })
  }
}

output "arn" { value = aws_sfn_state_machine.this.arn }
output "name" { value = aws_sfn_state_machine.this.name }
