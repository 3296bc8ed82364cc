"""The code that runs inside the sandbox: the fork server (leafe_zygote.py) and what its
children run. These modules use the standard library only (Python >= 3.9) and are imported
there as top-level modules, from this folder, by the sandbox's own interpreter; the judge's
process never imports them."""
