"""Measuring generators and discriminators: Inception features, FID/KID/precision-recall against
cached reference statistics, nearest training images, and the paper's linear probe of D."""
