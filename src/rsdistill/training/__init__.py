"""The training loop and what it trains: members, distillers, callbacks, final metrics."""
