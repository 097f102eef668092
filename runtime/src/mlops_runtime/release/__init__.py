"""Release: which model runs where. Pins in git, the promotion gates, the pull request text, manifests."""
