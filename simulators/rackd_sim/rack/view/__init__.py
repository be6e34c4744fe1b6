"""The demo's live terminal view of a rack, built from what rackd publishes on MQTT."""
