"""Request and response models of the service (pydantic).

The routes off the hot path validate their bodies with these models. The
scoring routes check their bodies by hand (see :mod:`fraudcore.service.app`)
and take their OpenAPI documentation from here: :func:`detect_request_doc`
describes a transaction with the served model's column names.
"""

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    feature: Optional[str] = Field(
        description="The feature the reason is about (null: cancellation)"
    )
    value: Optional[float] = Field(description="The feature's value for this transaction")
    text: str


class DetectResult(BaseModel):
    event_id: str
    risk_score: float = Field(description="Share of training transactions scored lower (0..1)")
    risk_level: str = Field(description="CRITICAL, HIGH, MEDIUM or LOW")
    priority: int = Field(description="1 (critical alert) .. 4 (low alert); 5 = no alert")
    is_alert: bool
    confidence: float = Field(description="Weight of the detectors that flag it on their own")
    scores: dict[str, float] = Field(description="Each detector's normalised score")
    fraud_probability: Optional[float] = Field(None, description="With a supervised model")
    reasons: list[Reason]
    model_version: str
    alert_id: Optional[int] = Field(None, description="Set when an alert was opened")
    duplicate: bool = Field(description="The event id was seen before: the stored result")


class BatchResult(BaseModel):
    results: list[DetectResult]


class AlertMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="INVESTIGATING, CONFIRMED_FRAUD, FALSE_POSITIVE or CLOSED")
    analyst: Optional[str] = Field(None, max_length=200, description="Default: the API key's name")
    note: Optional[str] = Field(None, max_length=10_000)
    version: Optional[int] = Field(
        None, description="The alert version the move is based on (or the If-Match header)"
    )


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=200)
    label: int = Field(ge=0, le=1, description="1 = fraud (a chargeback), 0 = legitimate")
    time: Optional[str] = Field(None, description="When the label was established (ISO-8601)")
    source: Optional[str] = Field(None, max_length=200, description="Default: the API key's name")


class LabelsIn(BaseModel):
    labels: list[Label] = Field(max_length=100_000)


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Optional[str] = Field(None, description="A model file; default: the file being served")


class AnomaliesIn(BaseModel):
    customer_id: Union[str, int]
    filter_metric: str = Field(
        "TotalSpent", description="TotalSpent, HistFreq, Quantity or risk_score"
    )


# Roles a transaction must carry (besides the numbers), and the one it never does.
_REQUIRED_ROLES = ("entity", "timestamp", "amount", "quantity", "unit_price")
_NEVER_SENT_ROLES = ("label",)


def transaction_fields(schema):
    """(numeric columns: required finite numbers, optional columns: may be
    absent or null) of a transaction under ``schema``; the entity and the
    timestamp are required besides."""
    numbers = [c for c in (schema.amount, schema.quantity, schema.unit_price) if c]
    numbers += list(schema.passthrough)
    skip = (*_REQUIRED_ROLES, *_NEVER_SENT_ROLES)
    optional = [c for role, c in schema.roles.items() if role not in skip]
    optional = [c for c in dict.fromkeys(optional) if c not in numbers]
    return numbers, optional


def _transaction_schema(schema):
    """JSON Schema of one transaction, named as the model's schema names its columns."""
    numbers, optional = transaction_fields(schema)
    properties = {
        "event_id": {
            "type": "string",
            "description": "Idempotency key: a retry returns the stored result",
        }
    }
    required = []
    if schema.entity:
        properties[schema.entity] = {"type": "string", "description": "The customer"}
        required.append(schema.entity)
    properties[schema.timestamp] = {
        "type": "string",
        "description": f"ISO-8601, or a number of {schema.time_unit} since 1970",
    }
    required.append(schema.timestamp)
    for column in numbers:
        properties[column] = {"type": "number"}
        required.append(column)
    for column in optional:
        if column not in properties:
            properties[column] = {"type": "string", "nullable": True}
    return {"type": "object", "properties": properties, "required": required}


def detect_request_doc(schema):
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _transaction_schema(schema)}},
        }
    }


def batch_request_doc(schema):
    body = {
        "type": "object",
        "properties": {"transactions": {"type": "array", "items": _transaction_schema(schema)}},
        "required": ["transactions"],
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
