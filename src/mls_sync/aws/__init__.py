"""Running on AWS: the Lambda handler (`mls_sync.aws.handler`; its EMF metrics are written by
observability/emf.py, an observer the runtime registers on Lambda).

The Lambda runtime resolves the handler string `mls_sync.aws.handler` as the attribute
`handler` of this package, so it is bound here to the callable (the submodule of the same
name is reachable as `mls_sync.aws.handler` only through `sys.modules`).
"""

from mls_sync.aws.handler import LambdaHandler, handler

__all__ = ["LambdaHandler", "handler"]
