"""MLS clients: the RESO Web API (OData) client, its errors and request budgets."""
