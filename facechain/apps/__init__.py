"""Applications built on the portrait pipeline (paper section 3): the talking head, virtual try-on.

Each application is a package of its own; apps may use every lower layer, nothing below imports them.
"""
