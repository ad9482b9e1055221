"""The thin HTTP layer: authentication, request/response shapes, and calls into `ddoc`."""
