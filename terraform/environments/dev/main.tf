# recon — dev. Remote state: create the bucket and lock table once (README: deploy guide), then
# `terraform init -backend-config=backend.hcl`.

terraform {
  required_version = ">= 1.6"
  backend "s3" {
    # bucket         = "acme-terraform-state"          # in backend.hcl
    key          = "recon/dev/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { Project = "recon", Environment = "dev" }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}
variable "operations_email" { type = string }
variable "sender_email" { type = string }
variable "ses_configuration_set" {
  type        = bool
  default     = true
  description = "Leave true. Only `make deploy-local` (moto) sets it false: moto cannot describe an SES configuration set."
}
variable "artifacts_dir" {
  type    = string
  default = "../../../target/lambda"
}

module "recon" {
  source           = "../../modules/recon"
  environment      = "dev"
  region           = var.region
  azs              = ["${var.region}a", "${var.region}b"]
  operations_email = var.operations_email
  sender_email     = var.sender_email
  artifacts_dir    = var.artifacts_dir
  multi_az         = false

  ses_configuration_set = var.ses_configuration_set
}

output "bucket" { value = module.recon.bucket }
output "state_machine_arn" { value = module.recon.state_machine_arn }
