"""Strawberry types and inputs: the one definition of every shape both APIs speak.

Python class names and field names are the REST contract's (the OpenAPI
component names); the ``name=`` given to Strawberry is the GraphQL idiom.
"""
