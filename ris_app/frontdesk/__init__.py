"""The front desk: stations' opening hours, blocks and procedures (resources), the free
slots they leave (availability), and the one booking rule every way of placing or moving
a step goes through (booking)."""
