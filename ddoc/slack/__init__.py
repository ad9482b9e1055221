"""Slack: verified inbound requests (buttons, slash commands) and the Web API client."""
