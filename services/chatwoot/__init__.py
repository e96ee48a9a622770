"""The Chatwoot bridge: mirrors conversations into a Chatwoot API inbox, and back."""
