"""The steps of a node's life, one module each (an Ansible role each).

Every module has ``DEFAULTS`` (its inventory settings and their default values, like a role's
defaults/main.yml) and one ``@deploy`` function. Pure logic lives outside this package.
"""
