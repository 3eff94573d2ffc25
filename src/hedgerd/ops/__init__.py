"""Operations: logging, metrics, health endpoints, systemd notification."""
