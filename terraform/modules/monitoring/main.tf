# Alarms to an SNS topic that emails operations: failed executions, Lambda errors, and messages in the DLQ.
# SES identity and configuration set for the reconciliation emails.

variable "name" { type = string }
variable "operations_email" { type = string }
variable "sender_email" { type = string }
variable "state_machine_arn" { type = string }
variable "function_names" { type = list(string) }
variable "kms_key_arn" { type = string }

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "operations" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.operations_email
}

resource "aws_cloudwatch_metric_alarm" "executions_failed" {
  alarm_name          = "${var.name}-executions-failed"
  alarm_description   = "A reconciliation execution failed (or timed out): read its failure email and the execution history, then rerun the day."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsFailed"
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "executions_timed_out" {
  alarm_name          = "${var.name}-executions-timed-out"
  alarm_description   = "A reconciliation execution timed out."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsTimedOut"
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = toset(var.function_names)
  alarm_name          = "${each.key}-errors"
  alarm_description   = "The ${each.key} function reported errors: see its log group for the errorType (README: error names)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

variable "ses_configuration_set" {
  type        = bool
  default     = true
  description = "Create the SES configuration set (TLS required, reputation metrics). Always true in AWS; false only for `make deploy-local`, because moto answers GetConfigurationSet with a body the provider cannot decode."
}

resource "aws_sesv2_configuration_set" "this" {
  count                  = var.ses_configuration_set ? 1 : 0
  configuration_set_name = var.name
  delivery_options {
    tls_policy = "REQUIRE"
  }
  reputation_options {
    reputation_metrics_enabled = true
  }
}

resource "aws_sesv2_email_identity" "sender" {
  email_identity         = var.sender_email
  configuration_set_name = var.ses_configuration_set ? aws_sesv2_configuration_set.this[0].configuration_set_name : null
}

output "configuration_set" {
  value = var.ses_configuration_set ? aws_sesv2_configuration_set.this[0].configuration_set_name : null
}
output "sender_identity_arn" { value = aws_sesv2_email_identity.sender.arn }
