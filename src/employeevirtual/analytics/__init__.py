"""Usage analytics (daily rollups in MongoDB), budgets, and live metrics."""
