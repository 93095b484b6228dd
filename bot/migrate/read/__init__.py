"""Read-only views of the migrations: status and history, the SQL preview, drift, the reports."""
