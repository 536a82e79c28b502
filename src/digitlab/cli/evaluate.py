"""`digitlab evaluate`: (being written)."""
import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
