"""Tests of stealguard.defenses (a package so that test modules can import the shared helpers in conftest)."""
