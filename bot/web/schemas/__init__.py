"""Response models of the JSON API, by area (as the routers are): every route answers with a model,
so the OpenAPI document has a schema for every response (a test checks it)."""
