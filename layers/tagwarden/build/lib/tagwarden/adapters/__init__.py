"""Adapters: the ledger on DynamoDB, alerts on SNS, and the AWS client factory they share."""
