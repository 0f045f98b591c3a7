"""The on-policy COMA family: centralised critics, advantage modules, actor updates."""
