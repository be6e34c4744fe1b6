"""The MQTT side: topic tree and JSON codec (the single wire definition), spool, and the broker adapter."""
