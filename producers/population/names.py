"""Swedish first names by sex and generation, and common surnames (Statistics Sweden's most
frequent names, abridged), so that synthetic residents look like a Swedish population."""

from __future__ import annotations

# (born before, female names, male names): fashions change, so a grandmother is rarely "Wilma".
FIRST_NAMES: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (1960,
     ("Margareta", "Birgitta", "Kerstin", "Ingrid", "Gunilla", "Barbro", "Ulla", "Britt",
      "Marianne", "Elisabeth", "Inger", "Karin", "Anna", "Gun", "Solveig", "Ingegerd"),
     ("Lars", "Karl", "Bengt", "Sven", "Gunnar", "Lennart", "Hans", "Bo", "Olof", "Rolf",
      "Göran", "Kjell", "Nils", "Erik", "Åke", "Stig")),
    (1990,
     ("Anna", "Maria", "Eva", "Karin", "Lena", "Susanne", "Malin", "Jessica", "Sofia",
      "Helena", "Camilla", "Åsa", "Linda", "Sara", "Emma", "Therese"),
     ("Anders", "Johan", "Per", "Mikael", "Peter", "Thomas", "Daniel", "Fredrik", "Magnus",
      "Jonas", "Stefan", "Andreas", "Mattias", "Martin", "Niklas", "Henrik")),
    (2010,
     ("Emma", "Elin", "Ida", "Hanna", "Julia", "Linnéa", "Matilda", "Johanna", "Amanda",
      "Sofia", "Moa", "Elsa", "Frida", "Wilma", "Ebba", "Klara"),
     ("Oscar", "Erik", "Filip", "Viktor", "Simon", "Alexander", "Emil", "Anton", "Jacob",
      "Axel", "Gustav", "Isak", "Albin", "Ludvig", "Hugo", "Elias")),
    (9999,
     ("Alice", "Maja", "Elsa", "Astrid", "Wilma", "Freja", "Olivia", "Selma", "Alma", "Saga",
      "Vera", "Agnes", "Ella", "Stella", "Ebba", "Signe"),
     ("William", "Liam", "Noah", "Hugo", "Lucas", "Oliver", "Elias", "Adam", "Alexander",
      "Vincent", "Nils", "Leo", "Theo", "Frans", "Melvin", "Sixten")),
)

LAST_NAMES: tuple[str, ...] = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
    "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Jansson", "Hansson",
    "Bengtsson", "Jönsson", "Lindberg", "Jakobsson", "Magnusson", "Olofsson", "Lindström",
    "Lindqvist", "Lindgren", "Berg", "Axelsson", "Bergström", "Lundberg", "Lind", "Lundgren",
    "Lundqvist", "Mattsson", "Berglund", "Fredriksson", "Sandberg", "Henriksson", "Forsberg",
    "Sjöberg", "Wallin", "Engström", "Eklund", "Danielsson", "Lundin", "Håkansson", "Björk",
    "Bergman", "Gunnarsson", "Holm", "Wikström", "Samuelsson", "Isaksson", "Fransson",
    "Bergqvist", "Nyström", "Holmberg", "Arvidsson", "Löfgren", "Söderberg", "Nyberg",
    "Blomqvist", "Claesson", "Nordström", "Mårtensson", "Lundström", "Viklund", "Björklund",
    "Eliasson", "Pålsson", "Berggren", "Sandström", "Lund", "Nordin", "Ström", "Åberg",
    "Hermansson", "Ekström", "Holmgren", "Sundberg", "Hedlund", "Dahlberg", "Hellström",
    "Sjögren", "Abrahamsson", "Falk", "Martinsson", "Öberg", "Andreasson", "Blom", "Ek",
    "Månsson", "Strand", "Holmqvist", "Åkesson", "Hassan", "Mohammed", "Ali", "Ahmed",
)


def first_names(birth_year: int, sex: str) -> tuple[str, ...]:
    for before, female, male in FIRST_NAMES:
        if birth_year < before:
            return female if sex == "F" else male
    raise AssertionError("the last generation covers every year")
