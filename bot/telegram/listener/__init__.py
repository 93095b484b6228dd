"""The HTTP listener: /livez, /readyz and /metrics, and webhook mode's update endpoint."""
