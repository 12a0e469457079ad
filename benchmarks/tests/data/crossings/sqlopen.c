#include <stdio.h>
#include <sqlite3.h>
int main(void) {
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "create table t(a)", 0, 0, 0);
    sqlite3_close(db);
    puts(sqlite3_libversion());
    return 0;
}
