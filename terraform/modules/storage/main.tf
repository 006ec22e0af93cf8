# The data bucket (inbox/, raw/, reports/): versioned, KMS-encrypted, private, TLS only, lifecycle rules,
# EventBridge notifications so drops in inbox/ reach the s3-trigger function. Also the shared KMS key and the
# functions' dead-letter queue.

variable "name" { type = string }
variable "raw_retention_days" {
  type    = number
  default = 2555 # seven years of raw inputs for audit
}

data "aws_caller_identity" "me" {}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy names only this key; the account root statement is the standard one that lets IAM policies grant use.
  #checkov:skip=CKV_AWS_356:In a key policy "*" means this key.
  #checkov:skip=CKV_AWS_109:The account root statement is required so the key can be administered through IAM.
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"] # a key policy's resource is always the key itself
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.me.account_id}:root"]
    }
  }
  statement {
    sid       = "Services"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"] # a key policy's resource is always the key itself
    principals {
      type        = "Service"
      identifiers = ["logs.amazonaws.com", "sns.amazonaws.com", "sqs.amazonaws.com", "events.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "this" {
  description         = "${var.name} data, logs, secrets and queues"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_18:Access logging goes to CloudTrail data events in the organisation trail, not to a bucket per service.
  #checkov:skip=CKV_AWS_144:Cross-region replication is an organisation-level backup decision; versioning and lifecycle keep every raw input.
  bucket = "${var.name}-data"
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_policy" "tls_only" {
  bucket = aws_s3_bucket.data.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    id     = "raw-to-archive"
    status = "Enabled"
    filter {
      prefix = "raw/"
    }
    transition {
      days          = 90
      storage_class = "GLACIER_IR"
    }
    expiration {
      days = var.raw_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.raw_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    id     = "partition-outcomes"
    status = "Enabled"
    filter {
      prefix = "work/"
    }
    expiration {
      days = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  rule {
    id     = "reports"
    status = "Enabled"
    filter {
      prefix = "reports/"
    }
    transition {
      days          = 180
      storage_class = "STANDARD_IA"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_notification" "eventbridge" {
  bucket      = aws_s3_bucket.data.id
  eventbridge = true
}

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  kms_master_key_id         = aws_kms_key.this.arn
  message_retention_seconds = 1209600
}

output "bucket" { value = aws_s3_bucket.data.bucket }
output "bucket_arn" { value = aws_s3_bucket.data.arn }
output "kms_key_arn" { value = aws_kms_key.this.arn }
output "dlq_arn" { value = aws_sqs_queue.dlq.arn }
