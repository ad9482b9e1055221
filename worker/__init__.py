"""The control-plane worker: runs the workflows and the activities that talk to Postgres."""
