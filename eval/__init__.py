"""FUSS evaluation: SI-SNR, MSi, 1S, separation rates, reports and plots."""
