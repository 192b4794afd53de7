"""Scored items for the alert store's tests (the dict write_scored takes)."""


def scored_item(event_id, customer_id, occurred_at, amount, **changes):
    """An alert (HIGH, priority 2) with one feature and one detector score;
    changes override any key."""
    item = {
        "event_id": event_id,
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "amount": amount,
        "transaction": {"id": event_id, "amount": amount},
        "features": {"amount": amount},
        "scores": {"isolation_forest": 0.9},
        "risk_score": 0.99,
        "fraud_probability": None,
        "risk_level": "HIGH",
        "priority": 2,
        "confidence": 0.5,
        "is_alert": True,
        "reasons": [],
        "model_version": "m1",
    }
    item.update(changes)
    return item
