"""What a person reads: the self-contained HTML report and ``modelwatch status``."""
