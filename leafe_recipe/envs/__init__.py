"""Environment families behind one protocol (base.py); each is imported on first use
(`base.get_family`), so importing this package starts no simulator."""
