"""Trello: board and card actions, signed with the application's secret and the callback URL."""
