"""The ledger on one DynamoDB table: one adapter per port, over one table client (`table.LedgerTable`)."""
