"""The AWS backend: DynamoDB, SQS, Cognito, SES and CloudWatch through boto3.

Endpoints come from the standard `AWS_ENDPOINT_URL` (and per-service variants), so the same
code runs against AWS and against moto.
"""
