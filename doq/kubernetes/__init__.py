"""doq on Kubernetes (docs/kubernetes.md): a pod's identity from its StatefulSet name
(``pod``), peers from the headless service's DNS and who bootstraps (``discovery``), the leader
published as the client Service's EndpointSlice (``endpoint``), and the preStop check that takes
a pod scaled away out of the configuration (``prestop``).

Only ``endpoint`` and ``prestop`` talk to the Kubernetes API, through lightkube (the
``doq[kubernetes]`` extra), imported when they are used: a node outside Kubernetes never loads it.
"""
