"""`dcgan serve`: a page in the browser for one trained generator.

`playground` makes the images, `server` answers HTTP, `page.html` is the page.
"""
