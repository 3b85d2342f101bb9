"""Tests of stealguard.attacks (a package so that test modules can import the shared helpers in _fixtures)."""
