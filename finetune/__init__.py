"""The fine-tuning layer every zoo model plugs into."""
