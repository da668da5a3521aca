"""One module per external system; each is the only place importing that system's client.

Import the adapter modules directly (e.g. ``controlplane.adapters.mlflow_registry``); this
package imports nothing so that loading one adapter never pulls in another's client.
"""
