"""Fault profiles for tests: rule builders, and starting a server with a profile written to a directory."""

import json


def rule(stage, do, **when):
    """One rule: rule("rcpt", {"reply": "550 ..."}, rcpt="bad@*")."""
    return {"when": {"stage": stage, **when}, "do": do}


def reply_rule(stage, reply, **when):
    return rule(stage, {"reply": reply}, **when)


def write_profile(directory, profile):
    """Write a profile to a new directory/profileN.json; its path.

    profile is a dict (the whole profile), a list (its rules) or a str (written as it is, valid or not).
    """
    path = directory / f"profile{len(list(directory.glob('profile*.json')))}.json"
    if isinstance(profile, list):
        profile = {"rules": profile}
    path.write_text(profile if isinstance(profile, str) else json.dumps(profile, indent=1), encoding="utf-8")
    return path


def start_with_profile(server_factory, directory, profile, *args, **kwargs):
    """A server (from the server_factory fixture) running the profile with --profile; the server object gets
    the file as `.profile_path`. args and kwargs go to server_factory."""
    path = write_profile(directory, profile)
    srv = server_factory("--profile", str(path), *args, **kwargs)
    srv.profile_path = path
    return srv
