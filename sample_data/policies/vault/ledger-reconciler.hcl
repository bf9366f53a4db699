# ledger-reconciler: attached to the AppRole role of the same name (platform team, 2025-11).
path "secret/data/ledger/*" {
  capabilities = ["read"]
}

// Card processors for the reconciliation of payouts.
path "secret/data/payments/+" {
  capabilities = ["read"]
}

path "secret/data/payments/swift" {
  capabilities = ["deny"]
}

path "secret/data/analytics/*" {
  capabilities = ["read", "list"]
}

/* HR data is never needed by the reconciler. */
path "secret/data/hr/*" {
  capabilities = ["deny"]
}

path "auth/token/create" {
  capabilities = ["update"]
}

path "aws/sts/reconciler" {
  capabilities = ["read"]
}

path "aws/creds/ledger-exporter" {
  capabilities = ["read"]
}

path "transit/decrypt/ledger" {
  capabilities = ["update"]
}
