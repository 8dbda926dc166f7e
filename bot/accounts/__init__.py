"""Customer accounts: the plan catalogue, the business rules, the SQL store, imports and identity verification."""
