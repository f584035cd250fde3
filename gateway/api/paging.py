"""Pages of a list: flask-smorest's paginate with the page number bounded too.

flask-smorest bounds page_size but not page: page 2**62 of 50 made an OFFSET beyond
PostgreSQL's bigint, a 500. MAX_PAGE pages of the largest size hold more rows than any
ward has; a larger page number is refused (422, like a page_size too large) and the
bound is in the OpenAPI document.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import flask_smorest
from flask import request
from marshmallow import fields, validate

MAX_PAGE = 1_000_000


class Blueprint(flask_smorest.Blueprint):
    def paginate(self, pager: Any = None, **kwargs: Any) -> Callable[[Any], Any]:
        paginate = super().paginate(pager, **kwargs)

        def decorator(view: Any) -> Any:
            paginated = paginate(view)
            documented = paginated._apidoc["pagination"]["parameters"]
            default = documented["schema"]._declared_fields["page"].load_default
            bounded = type("PaginationParametersSchema", (documented["schema"],), {
                "page": fields.Integer(load_default=default, validate=validate.Range(min=1, max=MAX_PAGE))})
            documented["schema"] = bounded

            @wraps(paginated)
            def bounded_view(*args: Any, **view_kwargs: Any) -> Any:
                self.PAGINATION_ARGUMENTS_PARSER.parse(bounded, request, location="query")
                return paginated(*args, **view_kwargs)

            return bounded_view

        return decorator
