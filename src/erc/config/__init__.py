"""params.yaml's schema: typed sections, validated once."""
