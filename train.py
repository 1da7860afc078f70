"""Fine-tune, benchmark and decide for one task recipe.   python train.py recipe=ticket_classifier"""

from slmtier.cli.main import train as main

if __name__ == "__main__":
    main()
