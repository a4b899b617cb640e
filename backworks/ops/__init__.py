"""Operations endpoints: liveness, readiness and the Prometheus exposition."""
